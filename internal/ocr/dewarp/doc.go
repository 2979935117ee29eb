// Package dewarp owns the geometry that makes a page flat before OCR: it
// finds the quadrilateral of a sheet photographed on a background
// (FindPage), estimates the small skew of a scanned page (EstimateSkew),
// decides which of the two corrections a page needs (Plan), and resamples
// the page through the resulting homography (Correction.Gray,
// Correction.Image).
//
// Every correction carries the homography from the corrected image back
// to the input, so a caller can map whatever it finds in the corrected
// image to the pixels it was given. The package never changes a page it
// is not confident about: an image that shows no sheet on a background and
// no measurable skew is left as it is, because a flat scan read as it is
// is the baseline every correction must not fall below.
//
// It is pure Go, imports no engine and allocates in proportion to the
// image: the searches run on a reduced copy and the full-resolution work is
// a fixed number of samples along the page's sides plus one resampling.
package dewarp
