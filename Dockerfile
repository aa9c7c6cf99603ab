# syntax=docker/dockerfile:1
# theaterd as a static binary on distroless, running as a non-root user.
#
#   docker build --build-arg VERSION=v1.2.3 -t theaterd .
#   docker run -p 8080:8080 -e REDIS_URL=redis://:pw@redis:6379/0 theaterd

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused while only the source changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: the SQLite driver is pure Go, so the binary needs no libc.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/theaterd ./cmd/theaterd \
 && mkdir -p /out/data

# static-debian12: CA certificates (rediss://, TLS to PostgreSQL), tzdata,
# /etc/passwd with the nonroot user (65532); no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/theaterd /theaterd
# The embedded SQLite default writes here; mount a volume to keep it.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV HTTP_ADDR=:8080 \
    DATABASE_URL=sqlite:/data/theater.db
EXPOSE 8080 9090
ENTRYPOINT ["/theaterd"]
