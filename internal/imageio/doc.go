// Package imageio turns request bytes into upright images, within limits.
//
// It identifies the format from the bytes (never trusting a Content-Type
// alone), checks every page's header against the byte, pixel and page
// limits before allocating pixel buffers, decodes one page at a time with a
// time bound, and applies EXIF/TIFF orientation so that callers always see
// the image as a viewer would display it.
//
// Every error it returns wraps one of ErrUnsupported, ErrUndecodable,
// ErrTooLarge, ErrUnusable or ErrDecodeTimeout, so a transport can answer
// with the right status without inspecting decoder internals. It must never
// panic on hostile input (FuzzDecode holds it to that).
package imageio
