package modelrepo

import (
	"strconv"
	"strings"
)

// MaxVersion is the largest version number a package may carry.
const MaxVersion = 1<<31 - 1

// ValidName reports whether name can name a model: 1 to 64 characters of
// lowercase ASCII letters, digits, '.', '_' and '-', starting with a letter
// or digit. Names appear in directory names, URLs and metric labels.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 64 || strings.Contains(name, "..") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// ParseVersion parses a version directory name: a positive integer of at
// most MaxVersion written without sign or leading zeros, so that each
// version has exactly one directory name ("7", never "07" or "+7").
func ParseVersion(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxVersion || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}
