package tesseract

import (
	"slices"
	"strings"
	"testing"
)

func TestAllowedVariablesAreSorted(t *testing.T) {
	if !slices.IsSortedFunc(AllowedVariables, func(a, b Variable) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("AllowedVariables must be sorted by name (CheckVariables searches it)")
	}
}

func TestCheckVariables(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string // "" = accepted
	}{
		{nil, ""},
		{map[string]string{"tessedit_char_whitelist": "0123456789", "user_defined_dpi": "300", "preserve_interword_spaces": "1"}, ""},
		// Debug and display variables: ScrollView starts a shell running
		// java and waits for it inside the recognition call.
		{map[string]string{"interactive_display_mode": "1"}, `"interactive_display_mode" is not allowed`},
		{map[string]string{"textord_tabfind_show_images": "1"}, "is not allowed"},
		{map[string]string{"tessedit_dump_pageseg_images": "1"}, "is not allowed"},
		{map[string]string{"wordrec_display_splits": "1"}, "is not allowed"},
		{map[string]string{"debug_file": "/etc/passwd"}, "is not allowed"},
		{map[string]string{"tessedit_write_images": "1"}, "is not allowed"},
		{map[string]string{"user_defined_dpi": "10"}, "from 70 to 2400"},
		{map[string]string{"preserve_interword_spaces": "yes"}, "want 0 or 1"},
		{map[string]string{"tessedit_char_whitelist": strings.Repeat("a", maxVariableText+1)}, "at most"},
		{map[string]string{"tessedit_char_whitelist": "a\x00b"}, "without NUL"},
	} {
		err := CheckVariables(tc.vars)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.vars, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want %q", tc.vars, err, tc.want)
		}
	}
}
