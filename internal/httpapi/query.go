package httpapi

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// query is a request's query string after checkQuery accepted it: every
// parameter is one the route reads, given once.
type query url.Values

// checkQuery parses r's query string and refuses (400, naming the
// parameter) one the route does not read, and one given more than once.
// A route declares what it reads here, so that a misspelt option
// (?treshold=0.99) is an error instead of a silent default, and so that
// two values never leave it to the handler which one wins.
func checkQuery(r *http.Request, accepted ...string) (query, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequestf("malformed query string: %v", err)
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // report the same parameter every time
	for _, name := range names {
		switch {
		case !slices.Contains(accepted, name):
			if len(accepted) == 0 {
				return nil, badRequestf("unknown query parameter %q: this route takes none", name)
			}
			return nil, badRequestf("unknown query parameter %q: this route takes %s", name, strings.Join(accepted, ", "))
		case len(q[name]) > 1:
			return nil, badRequestf("query parameter %q is given %d times; give it once", name, len(q[name]))
		}
	}
	return query(q), nil
}

// get returns the parameter's value, "" when absent.
func (q query) get(name string) string { return url.Values(q).Get(name) }

// positive reads an optional positive integer (0 when absent).
func (q query) positive(name string) (int, error) {
	v, ok := q[name]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 1 {
		return 0, badRequestf("%s=%q: want a positive integer", name, v[0])
	}
	return n, nil
}

// index reads an optional non-negative integer; ok is false when absent.
func (q query) index(name string) (n int, ok bool, err error) {
	v, ok := q[name]
	if !ok {
		return 0, false, nil
	}
	n, err = strconv.Atoi(v[0])
	if err != nil || n < 0 {
		return 0, false, badRequestf("%s=%q: want an integer from 0", name, v[0])
	}
	return n, true, nil
}

// number reads an optional finite number (nil when absent).
func (q query) number(name string) (*float64, error) {
	v, ok := q[name]
	if !ok {
		return nil, nil
	}
	f, err := strconv.ParseFloat(v[0], 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, badRequestf("%s=%q: want a number", name, v[0])
	}
	return &f, nil
}
