package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/trainer"
)

func init() {
	register(&command{
		name:  "version",
		short: "print the version, the commit, the Go and ONNX Runtime versions, the BLAS and kernels the trainer uses, and the gzip inflater of the data readers",
		setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageError("unexpected arguments %q", args)
				}
				fmt.Print(versionText())
				return nil
			}
		},
	})
	register(&command{
		name:  "completion",
		args:  "bash|zsh|fish",
		short: "print a shell completion script: source <(latent completion bash)",
		setup: func(fs *flag.FlagSet) func(context.Context, []string) error {
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usageError("want one shell: bash, zsh or fish")
				}
				script, err := completion(args[0])
				if err != nil {
					return usageError("%v", err)
				}
				fmt.Print(script)
				return nil
			}
		},
	})
}

// version is latent's release, or "devel" for a build from a checkout.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// versionText is what "latent version" prints, one "key value" a line.
func versionText() string {
	commit, dirty := "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				commit = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = " (with uncommitted changes)"
			}
		}
	}
	ort := "not found"
	var providers []inference.Provider
	if path, v, err := inference.Runtime(); err == nil {
		ort = v + " (" + path + ")"
		providers = inference.Providers(path)
	} else {
		ort += ": " + err.Error()
	}
	gpu := "not installed (make setup-cuda)"
	if p := inference.CachedGPULibraryPath(); fileExists(p) {
		gpu = inference.GPULibraryVersion + " (" + p + ")"
		providers = inference.Providers(p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "latent       %s\n", version())
	fmt.Fprintf(&b, "commit       %s%s\n", commit, dirty)
	fmt.Fprintf(&b, "go           %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "onnxruntime  %s\n", ort)
	fmt.Fprintf(&b, "gpu build    %s\n", gpu)
	for _, p := range providers {
		state := "ready"
		if len(p.Missing) > 0 {
			state = "needs " + p.Needs()
		}
		fmt.Fprintf(&b, "provider     %s (%s): %s\n", p.Name, p.Path, state)
	}
	fmt.Fprintf(&b, "blas         %s\n", trainer.BLAS())
	fmt.Fprintf(&b, "kernels      %s\n", trainer.Kernels())
	fmt.Fprintf(&b, "inflate      %s\n", dataset.Inflater)
	return b.String()
}

// completion returns the completion script of shell: the commands, and
// each command's flags.
func completion(shell string) (string, error) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	flags := map[string][]string{}
	for _, n := range names {
		fs := flag.NewFlagSet(n, flag.ContinueOnError)
		commands[n].setup(fs)
		fs.VisitAll(func(f *flag.Flag) { flags[n] = append(flags[n], "--"+f.Name) })
		flags[n] = append(flags[n], "--help")
	}
	var b strings.Builder
	switch shell {
	case "bash":
		fmt.Fprintf(&b, "# bash completion for latent: source <(latent completion bash)\n_latent() {\n")
		fmt.Fprintf(&b, "\tlocal cur=${COMP_WORDS[COMP_CWORD]}\n")
		fmt.Fprintf(&b, "\tif [[ $COMP_CWORD -eq 1 ]]; then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\treturn\n\tfi\n", strings.Join(append(names, "help"), " "))
		fmt.Fprintf(&b, "\tif [[ $cur == -* ]]; then\n\t\tcase ${COMP_WORDS[1]} in\n")
		for _, n := range names {
			fmt.Fprintf(&b, "\t\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", n, strings.Join(flags[n], " "))
		}
		fmt.Fprintf(&b, "\t\tesac\n\t\treturn\n\tfi\n\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n}\ncomplete -o filenames -F _latent latent\n")
	case "zsh":
		fmt.Fprintf(&b, "#compdef latent\n# zsh completion for latent: source <(latent completion zsh)\n_latent() {\n")
		fmt.Fprintf(&b, "\tif (( CURRENT == 2 )); then\n\t\tcompadd -- %s\n\t\treturn\n\tfi\n", strings.Join(append(names, "help"), " "))
		fmt.Fprintf(&b, "\tif [[ $words[CURRENT] == -* ]]; then\n\t\tcase $words[2] in\n")
		for _, n := range names {
			fmt.Fprintf(&b, "\t\t%s) compadd -- %s ;;\n", n, strings.Join(flags[n], " "))
		}
		fmt.Fprintf(&b, "\t\tesac\n\t\treturn\n\tfi\n\t_files\n}\ncompdef _latent latent\n")
	case "fish":
		fmt.Fprintf(&b, "# fish completion for latent: latent completion fish | source\n")
		fmt.Fprintf(&b, "complete -c latent -f -n __fish_use_subcommand -a %q\n", strings.Join(append(names, "help"), " "))
		for _, n := range names {
			for _, f := range flags[n] {
				fmt.Fprintf(&b, "complete -c latent -n '__fish_seen_subcommand_from %s' -l %s\n", n, strings.TrimPrefix(f, "--"))
			}
		}
	default:
		return "", fmt.Errorf("unknown shell %q: want bash, zsh or fish", shell)
	}
	return b.String(), nil
}

// fileExists reports whether path names a file that can be stat'ed.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
