# syntax=docker/dockerfile:1
# The portcullis image: the Makefile's static, stamped build on a distroless base with no shell,
# run as a non-root user, the data directory a volume; the root filesystem may be read-only.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) --build-arg DATE=$(git log -1 --format=%cI) -t portcullis .
#   docker run -p 8080:8080 -v portcullis-data:/var/lib/portcullis --read-only portcullis

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
# The same build command as `make release` (a test holds them equal).
RUN make static OUT=/out/portcullis PROBE_OUT=/out/portcullis-probe VERSION="$VERSION" COMMIT="$COMMIT" DATE="$DATE" \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portcullis /out/portcullis-probe /usr/local/bin/
# The data directory, owned by the image's non-root user so a fresh volume is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/portcullis
USER 65532:65532
VOLUME ["/var/lib/portcullis"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/portcullis-probe", "-timeout", "3s", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve", "--data", "/var/lib/portcullis", "--listen", "0.0.0.0:8080"]
