// Package pdf writes searchable PDFs: each page is the original page image
// with the recognised words laid over it as invisible text (rendering mode
// 3), word by word, so that search, selection and copy find each word where
// it is printed. The text uses one embedded glyphless TrueType font built
// by this package; per page, the OCR confidence and the lines per review
// tier are kept in the page's PieceInfo (docs/output-formats.md).
//
// Writer is streaming: NewWriter, then AddPage once per page in order, then
// Close. Each page's objects are written when it is added, and only object
// offsets are kept, so a long document (a job over a 100-page PDF) never
// holds more than the one page image its caller passes in.
//
// The package never reads requests or runs OCR, and never writes a page
// whose image it was not given.
package pdf
