package inference_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanDependencies holds the line that keeps the inference package
// light for the services that embed it, as Go's own go/build deps test
// does: none of the trainer's or the exporter's heavy libraries may come
// in, and the whole import graph stays under 100 packages. (81 before the
// GPU checks; debug/elf, which reads which CUDA libraries the provider
// needs, brings 9 of the standard library's.)
func TestLeanDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	forbidden := []string{"gorgonia.org/", "github.com/apache/arrow", "github.com/advancedclimatesystems/gonnx",
		"google.golang.org/protobuf", "github.com/golang/protobuf", "github.com/gogo/protobuf", "gonum.org/",
		"github.com/latent-ai/latent/exporter", "github.com/latent-ai/latent/trainer", "github.com/latent-ai/latent/pca"}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("inference depends on %s", d)
			}
		}
	}
	if len(deps) >= 100 {
		t.Errorf("inference depends on %d packages, want under 100", len(deps))
	}
	t.Logf("%d packages", len(deps))
}
