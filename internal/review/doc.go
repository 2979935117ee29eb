// Package review owns reviewed OCR lines: a person's correction of a line
// the server read, stored with the image of that line so that the pair is
// labelled data. Exported as <id>.png beside <id>.gt.txt, they are what
// `visionserve calibrate` fits a model's confidence calibration on, which
// closes the loop from "this line needs review" to "confidences mean what
// they say on this material".
//
// A Store keeps reviews durably: an embedded bbolt file on one machine, or
// PostgreSQL shared by replicas. Reviews belong to a tenant, like
// galleries: no call can name another tenant's review, and each tenant's
// count is bounded. Service is the core the transports call: it checks the
// input, re-creates the line image from the page the client read (the
// same decoder, limits and orientation as OCR, so the crop is what the
// model saw), assigns ids and writes the export archives.
//
// Review text is user input: it is validated and bounded, never used as a
// metric label or a file name (export names are the server's ids).
package review
