package tesseract

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Tesseract has several hundred parameters ("variables"). Most are for
// its developers: debug levels, dumps of intermediate images to the
// working directory, and display modes that open a ScrollView window,
// which starts a shell running `java ... ScrollView.jar` and then waits,
// inside the recognition call, for that viewer to connect: forever, on a
// server. A model package is data its publisher controls, so it may set
// only the variables below, each with its values checked: they change
// what is recognised, never where output goes or how long a page takes.

// Variable describes one variable a model package may set.
type Variable struct {
	Name string
	// Doc says what it does, for the documentation and error messages.
	Doc string
	// check refuses a value Tesseract would misread.
	check func(string) error
}

// maxVariableText bounds the string variables (character lists).
const maxVariableText = 4096

// AllowedVariables are the Tesseract variables a model package may set,
// sorted by name. docs/model-packages.md lists them.
var AllowedVariables = []Variable{
	{"preserve_interword_spaces", "keep runs of spaces between words (0 or 1)", boolValue},
	{"tessedit_char_blacklist", "characters never to recognise", textValue},
	{"tessedit_char_unblacklist", "characters to allow again after a blacklist", textValue},
	{"tessedit_char_whitelist", "the only characters to recognise", textValue},
	{"tessedit_do_invert", "also try white-on-black text (0 or 1)", boolValue},
	{"thresholding_method", "binarisation: 0 Otsu, 1 Leptonica Otsu, 2 Sauvola", intRange(0, 2)},
	{"user_defined_dpi", "the resolution of images that do not say (70 to 2400)", intRange(70, 2400)},
}

// CheckVariables refuses variables that are not in AllowedVariables, and
// values they do not take. The error names the first offender.
func CheckVariables(vars map[string]string) error {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		i, ok := slices.BinarySearchFunc(AllowedVariables, name, func(v Variable, n string) int { return strings.Compare(v.Name, n) })
		if !ok {
			return fmt.Errorf("tesseract variable %q is not allowed in a model package (allowed: %s)", printable(name), allowedNames())
		}
		if err := AllowedVariables[i].check(vars[name]); err != nil {
			return fmt.Errorf("tesseract variable %s: %w", name, err)
		}
	}
	return nil
}

func allowedNames() string {
	names := make([]string, len(AllowedVariables))
	for i, v := range AllowedVariables {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

// printable shortens and quotes a name from a package for an error.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func boolValue(s string) error {
	if s != "0" && s != "1" {
		return fmt.Errorf("value %q: want 0 or 1", printable(s))
	}
	return nil
}

func textValue(s string) error {
	if len(s) > maxVariableText || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return fmt.Errorf("value must be valid UTF-8 without NUL, at most %d bytes", maxVariableText)
	}
	return nil
}

func intRange(lo, hi int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("value %q: want an integer from %d to %d", printable(s), lo, hi)
		}
		return nil
	}
}
