module github.com/portcullis-ai/portcullis

go 1.26
