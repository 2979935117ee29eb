// Package ppocr is the PP-OCR pipeline for photos and scene text: DB text
// detection, a 0/180-degree line orientation classifier and CTC
// recognition, or, in hybrid mode, DB detection with another engine (such as
// Tesseract) reading each upright line crop.
//
// It consumes models only through engine.TensorRunner and
// engine.TextRecognizer, so it never loads a model or a shared library
// itself and its tests can run on fakes. Its output is []ocr.Line with
// quadrilateral boxes in the input image's coordinates; it never fills
// review tiers (the ocr package's policy does) and never decodes bytes.
//
// The pre- and post-processing follow PaddleOCR's (DetResizeForTest,
// DBPostProcess, get_rotate_crop_image, the CRNN resize_norm_img,
// CTCLabelDecode); where this package departs from it, the code says why.
package ppocr
