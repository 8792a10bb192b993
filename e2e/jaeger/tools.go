//go:build tools

// Pins the jaeger command's dependencies in go.sum; scripts/jaeger builds it
// with `go build github.com/jaegertracing/jaeger/cmd/jaeger`.
package tools

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
