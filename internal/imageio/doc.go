// Package imageio turns request bytes into upright images, within limits.
//
// It identifies the format from the bytes (never trusting a Content-Type
// alone), checks every page's header against the byte, pixel and page
// limits before allocating pixel buffers, decodes one page at a time with a
// time bound, and applies EXIF/TIFF orientation so that callers always see
// the image as a viewer would display it.
//
// Decoding a page never allocates more than 4 bytes per pixel of
// Limits.MaxPixels, plus 1 MB: pages come out at 8 bits per channel (PNG,
// TIFF and PNM have their own streaming decoders, so 16-bit samples are
// never held), and a page whose format would make its decoder exceed the
// bound (a progressive or CMYK JPEG near the pixel limit, a lossless WebP
// whose Huffman codes outweigh its pixels) is refused from its headers,
// before decoding (cost.go, vp8l.go).
//
// Every error it returns wraps one of ErrUnsupported, ErrUndecodable,
// ErrTooLarge, ErrUnusable or ErrDecodeTimeout, so a transport can answer
// with the right status without inspecting decoder internals. It must never
// panic on hostile input (FuzzDecode holds it to that).
package imageio
