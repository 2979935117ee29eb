package tesseract

/*
#cgo pkg-config: tesseract lept
#include <stdlib.h>
#include <tesseract/capi.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static void vs_trim(void) {
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static int vs_mmap_threshold(int n) {
#ifdef __GLIBC__
	return mallopt(M_MMAP_THRESHOLD, n);
#else
	return 0;
#endif
}
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// newFromData builds an Engine from cfg.Data, opening no file.
func newFromData(cfg Config) (e *Engine, err error) {
	lang := cfg.Languages
	if strings.Contains(lang, "+") {
		return nil, fmt.Errorf("tesseract: languages %q: in-memory models take exactly one language", lang)
	}
	data, ok := cfg.Data[lang]
	if !ok {
		return nil, fmt.Errorf("tesseract: no data for language %q", lang)
	}
	if err := CheckTraineddata(data); err != nil {
		return nil, fmt.Errorf("tesseract: %s.traineddata: %w", lang, err)
	}
	var osd []byte
	if cfg.Orientation {
		if osd, ok = cfg.Data["osd"]; !ok {
			return nil, errors.New("tesseract: orientation detection needs osd data")
		}
		if err := CheckTraineddata(osd); err != nil {
			return nil, fmt.Errorf("tesseract: osd.traineddata: %w", err)
		}
	}
	e = &Engine{}
	if !cfg.AllowOpenMP {
		e.single = 1
	}
	// The error returns below set e to nil; close the partial engine
	// through its own pointer.
	partial := e
	defer func() {
		if err != nil {
			partial.Close() // Close copes with a partial construction.
		}
	}()
	if e.api, err = initAPIData(data, lang); err != nil {
		return nil, err
	}
	for k, v := range cfg.Variables {
		if err := setVariable(e.api, k, v); err != nil {
			return nil, err
		}
	}
	if osd != nil {
		if e.osd, err = initAPIData(osd, "osd"); err != nil {
			return nil, err
		}
		C.TessBaseAPISetPageSegMode(e.osd, C.PSM_OSD_ONLY)
	}
	e.arm()
	return e, nil
}

// initAPIData initialises a TessBaseAPI from a traineddata image in memory.
// Tesseract copies the bytes, so data is not retained after the call.
//
// When Tesseract cannot parse the buffer it falls back to reading
// "<lang>/<lang>.traineddata" relative to the working directory, a file
// nobody verified. CheckTraineddata accepts only buffers that Tesseract's
// parser accepts, so that fallback is never taken.
func initAPIData(data []byte, lang string) (*C.TessBaseAPI, error) {
	if err := CheckTraineddata(data); err != nil {
		return nil, fmt.Errorf("tesseract: %s.traineddata: %w", lang, err)
	}
	api := C.TessBaseAPICreate()
	_ = setVariable(api, "debug_file", "/dev/null")
	cLang := C.CString(lang)
	defer C.free(unsafe.Pointer(cLang))
	rc := C.TessBaseAPIInit5(api, (*C.char)(unsafe.Pointer(&data[0])), C.int(len(data)), cLang,
		C.OEM_DEFAULT, nil, 0, nil, nil, 0, 0)
	if rc != 0 {
		C.TessBaseAPIDelete(api)
		return nil, fmt.Errorf("tesseract: cannot initialise %q from its model data", lang)
	}
	return api, nil
}

// maxTessdataEntries is Tesseract's kMaxNumTessdataEntries.
const maxTessdataEntries = 1000

// maxTraineddataBytes keeps the length within the C int Init5 takes.
const maxTraineddataBytes = 1<<31 - 1

// CheckTraineddata checks that data is a well-formed .traineddata container
// as Tesseract's TessdataManager reads it: an entry count, a table of
// 64-bit offsets (-1 for an absent entry), then the entries in offset
// order. It is stricter than Tesseract, which trusts the offsets and would
// allocate absurd sizes for decreasing ones; the content of each entry is
// left to Tesseract.
func CheckTraineddata(data []byte) error {
	if len(data) < 4 {
		return errors.New("not a traineddata file: too short")
	}
	if len(data) > maxTraineddataBytes {
		return errors.New("traineddata larger than 2 GiB")
	}
	var order binary.ByteOrder = binary.LittleEndian
	n := order.Uint32(data)
	if n > maxTessdataEntries {
		order = binary.BigEndian // Tesseract reads byte-swapped files too
		n = order.Uint32(data)
	}
	if n == 0 || n > maxTessdataEntries {
		return errors.New("not a traineddata file: bad entry count")
	}
	header := 4 + 8*int64(n)
	if int64(len(data)) < header {
		return errors.New("not a traineddata file: truncated offset table")
	}
	next, present := header, 0
	for i := range int64(n) {
		off := int64(order.Uint64(data[4+8*i:]))
		if off == -1 {
			continue
		}
		if present == 0 && off != header || off < next || off > int64(len(data)) {
			return fmt.Errorf("not a traineddata file: entry %d offset %d out of order or range", i, off)
		}
		next = off
		present++
	}
	if present == 0 {
		return errors.New("not a traineddata file: no entries")
	}
	return nil
}

// MmapThreshold is the allocation size from which TuneMalloc makes glibc
// map memory directly (its initial default, 128 KiB, doubled).
const MmapThreshold = 256 << 10

// TuneMalloc fixes glibc's mmap threshold at MmapThreshold, unless the
// MALLOC_MMAP_THRESHOLD_ environment variable already decides. By default
// glibc raises the threshold each time a large mapped block is freed, so
// after the first model version is unloaded the next one's big buffers
// come from the heap instead, are fragmented by the requests' small
// allocations, and are never returned: resident memory creeps up with
// every hot swap (measured here: about +30 MiB after 25 load/unload
// cycles of a two-engine English model). With a fixed threshold, model
// memory is mapped, and unmapped when the version is closed. It reports
// whether it changed the setting; call it before loading models.
func TuneMalloc() bool {
	if os.Getenv("MALLOC_MMAP_THRESHOLD_") != "" {
		return false
	}
	return C.vs_mmap_threshold(C.int(MmapThreshold)) == 1
}

// TrimMemory asks the C allocator to return freed memory to the operating
// system. Call it after closing engines: glibc otherwise keeps the pages
// of freed models mapped, and the process's resident size would not show
// that a replaced model version was freed. A no-op on other C libraries.
func TrimMemory() { C.vs_trim() }
