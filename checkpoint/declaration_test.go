package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadChecksDeclaration checks that Load refuses a file whose metadata
// disagrees with its declaration or whose declaration is unsound, and accepts
// a tiny valid one.
func TestLoadChecksDeclaration(t *testing.T) {
	dir := t.TempDir()
	a := tinyArchs()[0]
	m := tinyModel(a)
	for _, tc := range []struct {
		name string
		info map[string]string
		want string
	}{
		{"good", map[string]string{"arch": a.JSON(), "kind": "tiny", "bottleneck": "2"}, ""},
		{"kind disagrees", map[string]string{"arch": a.JSON(), "kind": "classic"}, `metadata kind "classic" but the architecture is "tiny"`},
		{"bottleneck disagrees", map[string]string{"arch": a.JSON(), "bottleneck": "02"}, `metadata bottleneck "02"`},
		{"stride 0", map[string]string{"arch": strings.Replace(tinyArchs()[1].JSON(), `"stride":2`, `"stride":0`, 1)}, "stride 0 out of range"},
		{"no kind", map[string]string{}, "no model kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeTensors(tensorsFor(a, m.Params, ""), tc.info)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tc.name+".safetensors")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Load(path)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got error %v, want one naming the file and containing %q", err, tc.want)
			}
		})
	}
}
