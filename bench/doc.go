// Package bench holds culvert's comparative benchmarks: our HTTP/2 codec and
// engine against golang.org/x/net/http2, run with `make bench` and compared
// with benchstat. Names follow Benchmark<Suite>/<case>/<impl> with impl in
// culvert, xnet, so `benchstat -col /impl` puts them side by side.
//
// It is not a test suite: correctness lives beside the code it checks.
package bench
