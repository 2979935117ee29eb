package httpapi

import (
	"errors"
	"io"
	"net/http"

	"github.com/visionserve/visionserve/internal/imageio"
)

// readParts reads the named image fields of a multipart body, each within
// limit bytes; other fields are skipped. Every name must be present, once:
// the body is read to its end (the caller bounds it), so a second part of
// a name is refused wherever it comes, rather than one of the two images
// being ignored.
func readParts(r *http.Request, limit int64, names ...string) (map[string]upload, func(), error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, badRequestf("malformed multipart body: %v", err)
	}
	out := map[string]upload{}
	var releases []func()
	release := func() {
		for _, f := range releases {
			f()
		}
	}
	fail := func(err error) (map[string]upload, func(), error) {
		release()
		return nil, nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return fail(&http.MaxBytesError{Limit: limit})
			}
			return fail(badRequestf("malformed multipart body: %v", err))
		}
		name := part.FormName()
		if !want[name] {
			continue
		}
		if _, dup := out[name]; dup {
			return fail(badRequestf("multipart field %q appears twice", name))
		}
		declared, err := imageio.CheckMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			return fail(err)
		}
		data, rel, err := readAll(r.Context(), io.LimitReader(part, limit+1), 0)
		if err != nil {
			return fail(err)
		}
		releases = append(releases, rel)
		if int64(len(data)) > limit {
			return fail(&http.MaxBytesError{Limit: limit})
		}
		out[name] = upload{Data: data, Declared: declared}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return fail(badRequestf("multipart body has no field named %q", n))
		}
	}
	return out, release, nil
}
