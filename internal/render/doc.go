// Package render turns an OCR result into the document formats users ask
// for: json (the API's own), text, hOCR, ALTO v4, PAGE XML 2019 and a
// searchable PDF. Every transport (HTTP format=, the gRPC format field, the
// CLI's --format, job results) looks formats up in one registry, so a new
// format is one file that implements Renderer plus its Register call.
//
// Renderers only write: they never run OCR, never read requests and never
// hold more than one page image at a time (formats that show the images
// pull them from a Pages source, page by page). Every format keeps each
// word's and line's confidence and, where the format has room, the line's
// review tier (docs/output-formats.md).
package render
