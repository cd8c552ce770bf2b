module github.com/portcullis-ai/portcullis

go 1.26.0

require (
	github.com/corazawaf/libinjection-go v0.3.5
	github.com/google/go-cmp v0.7.0
	golang.org/x/text v0.44.0
)
