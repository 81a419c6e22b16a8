# The Shop operator image: a static binary on distroless, run as non-root.
FROM golang:1.26 AS build
ARG VERSION=0.1.0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY config/crd/ config/crd/
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
    -ldflags "-s -w -X github.com/shopplatform/shop-operator/internal/version.Version=${VERSION}" \
    -o /manager ./cmd/manager

FROM gcr.io/distroless/static:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="shop-operator" \
      org.opencontainers.image.source="https://github.com/shopplatform/shop-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
