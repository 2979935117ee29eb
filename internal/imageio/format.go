package imageio

import (
	"bytes"
	"mime"
	"strings"
)

// Format is an image container format visionserve decodes.
type Format string

// Supported formats.
const (
	PNG  Format = "png"
	JPEG Format = "jpeg"
	TIFF Format = "tiff"
	BMP  Format = "bmp"
	GIF  Format = "gif"
	WebP Format = "webp"
	PNM  Format = "pnm"
)

// Formats lists the supported formats, for error messages and docs.
var Formats = []Format{PNG, JPEG, TIFF, BMP, GIF, WebP, PNM}

// Sniff identifies the format from the first bytes of data. It returns ""
// for anything else; a PDF is reported separately so callers can say so.
func Sniff(data []byte) Format {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		return JPEG
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return GIF
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")),
		bytes.HasPrefix(data, []byte("II+\x00")), bytes.HasPrefix(data, []byte("MM\x00+")):
		return TIFF
	case bytes.HasPrefix(data, []byte("BM")) && len(data) >= 26:
		return BMP
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return WebP
	case len(data) >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6' && isPNMSpace(data[2]):
		return PNM
	}
	return ""
}

// IsPDF reports whether data starts like a PDF document.
func IsPDF(data []byte) bool { return bytes.HasPrefix(data, []byte("%PDF-")) }

// mediaTypes maps declared Content-Types to the format they promise.
var mediaTypes = map[string]Format{
	"image/png":                PNG,
	"image/jpeg":               JPEG,
	"image/jpg":                JPEG,
	"image/pjpeg":              JPEG,
	"image/tiff":               TIFF,
	"image/tif":                TIFF,
	"image/bmp":                BMP,
	"image/x-bmp":              BMP,
	"image/x-ms-bmp":           BMP,
	"image/gif":                GIF,
	"image/webp":               WebP,
	"image/x-portable-anymap":  PNM,
	"image/x-portable-bitmap":  PNM,
	"image/x-portable-graymap": PNM,
	"image/x-portable-pixmap":  PNM,
}

// CheckMediaType vets a declared Content-Type before the body is read. It
// accepts an empty type, application/octet-stream, curl's default
// application/x-www-form-urlencoded and the image types of the supported
// formats, and returns the promised format ("" if none). Any other type is
// ErrUnsupported.
func CheckMediaType(contentType string) (Format, error) {
	if contentType == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", errorf(ErrUnsupported, "malformed Content-Type %q", contentType)
	}
	// curl --data-binary sends application/x-www-form-urlencoded unless
	// told otherwise; treat it, like octet-stream, as "no claim".
	if mt == "application/octet-stream" || mt == "application/x-www-form-urlencoded" {
		return "", nil
	}
	if f, ok := mediaTypes[mt]; ok {
		return f, nil
	}
	return "", errorf(ErrUnsupported, "Content-Type %s is not supported; send one of %s", mt, supportedList())
}

func supportedList() string {
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

func isPNMSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
