module github.com/portcullis-ai/portcullis

go 1.26.0

require github.com/google/go-cmp v0.7.0

require github.com/golang-jwt/jwt/v5 v5.3.1
