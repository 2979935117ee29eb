package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/visionserve/visionserve/internal/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "--url URL --data DIR [flags]", stderr)
	var o bench.Options
	fs.StringVar(&o.URL, "url", "", "endpoint to load, e.g. http://127.0.0.1:8080/v1/ocr (query parameters allowed)")
	fs.StringVar(&o.Data, "data", "", "directory of images to send, searched recursively, sent round-robin")
	fs.IntVar(&o.Concurrency, "concurrency", 4, "closed loop: concurrent clients; open loop: most requests outstanding")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: requests per second (0: closed loop)")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to send requests")
	fs.IntVar(&o.Requests, "requests", 0, "stop after this many requests (0: no cap)")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Second, "per-request timeout")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines")
	var headers headerFlag
	fs.Var(&headers, "H", "extra request header 'Name: value' (repeatable)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if o.URL == "" || o.Data == "" {
		fmt.Fprintln(stderr, "visionserve bench: --url and --data are required")
		fs.Usage()
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "visionserve bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	o.Header = http.Header(headers)
	if !*quiet {
		o.Progress = stderr
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return fail(stderr, "bench", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.WriteText(stdout)
	}
	if rep.Succeeded == 0 {
		fmt.Fprintln(stderr, "visionserve bench: no request succeeded")
		return 1
	}
	return 0
}

// headerFlag collects repeated -H 'Name: value' flags.
type headerFlag http.Header

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want 'Name: value'", v)
	}
	if *h == nil {
		*h = headerFlag{}
	}
	http.Header(*h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}
