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
	"path/filepath"
	"strings"
	"unsafe"
)

// newFromData builds an Engine from cfg.Data: one language straight from
// its bytes, opening no file; several from a private copy of their bytes
// (see privateCopy).
func newFromData(cfg Config) (e *Engine, err error) {
	lang := cfg.Languages
	langs := strings.Split(lang, "+")
	for _, l := range langs {
		data, ok := cfg.Data[l]
		if !ok {
			return nil, fmt.Errorf("tesseract: no data for language %q", l)
		}
		if err := CheckTraineddata(data); err != nil {
			return nil, fmt.Errorf("tesseract: %s.traineddata: %w", l, err)
		}
	}
	var osd []byte
	if cfg.Orientation {
		var ok bool
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
	if len(langs) == 1 {
		e.api, err = initAPIData(cfg.Data[lang], lang)
	} else {
		e.api, err = initAPICopy(cfg.Data, langs, cfg.TempDir)
	}
	if err != nil {
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

// initAPICopy initialises a TessBaseAPI for several languages from their
// bytes. Tesseract's C API reads a second language only from a directory,
// so the bytes are written to a private copy first: a directory that this
// call creates (mode 0700, a fresh random name under tempDir, "" meaning
// os.TempDir) with each file created exclusively (O_EXCL, 0600), handed to
// Tesseract, and removed as soon as Tesseract has read it (it keeps what
// it loaded in memory). The caller's bytes, which it verified, are what
// Tesseract loads: the directory the model came from is never opened, and
// no other user can write the copy.
func initAPICopy(data map[string][]byte, langs []string, tempDir string) (api *C.TessBaseAPI, err error) {
	dir, err := os.MkdirTemp(tempDir, "visionserve-tessdata-")
	if err != nil {
		return nil, fmt.Errorf("tesseract: private copy of the model data: %w", err)
	}
	defer func() {
		if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
			C.TessBaseAPIEnd(api)
			C.TessBaseAPIDelete(api)
			api, err = nil, fmt.Errorf("tesseract: removing the private copy of the model data: %w", rmErr)
		}
	}()
	for _, l := range langs {
		if err := writeExclusive(dir, l+".traineddata", data[l]); err != nil {
			return nil, fmt.Errorf("tesseract: private copy of %s.traineddata: %w", l, err)
		}
	}
	return initAPI(dir, strings.Join(langs, "+"))
}

// writeExclusive creates the file name in dir, which must not exist, and
// writes data to it. name may hold a subdirectory (Tesseract's script
// models: "script/Latin") but must stay inside dir.
func writeExclusive(dir, name string, data []byte) error {
	if !filepath.IsLocal(name) {
		return fmt.Errorf("language file %q leaves the data directory", name)
	}
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
