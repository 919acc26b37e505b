// Build-only module for the Jaeger v2 binary (github.com/jaegertracing/jaeger/cmd/jaeger).
//
// Jaeger's module path has no /v2, so its v2.x.y tags are not valid module versions, and
// `go install ...@version` refuses a module whose go.mod has replace directives. This module
// requires the release (v1.76.0 is the same commit as Jaeger v2.13.0) and repeats its
// replace directive, so `go build github.com/jaegertracing/jaeger/cmd/jaeger` resolves
// exactly the dependency set Jaeger itself was released with. go.sum is Jaeger's own go.sum
// for that release plus Jaeger's module hash: several of its older dependency versions have no
// checksum-database entry reachable from here, and the release's go.sum vouches for them.
module netobs.local/jaeger-build

go 1.24.6

require github.com/jaegertracing/jaeger v1.76.0

replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0
