// Command latent trains image autoencoders, exports them as ONNX, and runs
// them through ONNX Runtime.
//
// Usage:
//
//	latent <command> [flags] [args]
//
// Run "latent help" for the list of commands and "latent <command> --help"
// for the flags of one. Progress goes to stderr; results go to stdout or to
// files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// A command is one subcommand of latent. Each lives in its own file and
// registers itself in init.
type command struct {
	name  string
	args  string // the positional arguments, for the usage line
	short string // one line for "latent help"
	// setup declares the flags on fs and returns the function that runs the
	// command with the positional arguments.
	setup func(fs *flag.FlagSet) func(ctx context.Context, args []string) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// errUsage marks an error caused by bad flags or arguments: latent prints
// the command's usage and exits with status 2.
var errUsage = errors.New("usage")

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := latent(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// latent runs the command line args and returns the exit status: 0, 1 for
// a failure, 2 for bad flags or arguments. Help goes to stdout, errors to
// stderr.
func latent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "latent help: unknown command %q\n\n", args[1])
				printUsage(stderr)
				return 2
			}
			fs := newFlagSet(c, stdout)
			c.setup(fs)
			fs.Usage()
			return 0
		}
		printUsage(stdout)
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "latent: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	fs := newFlagSet(c, stderr)
	runner := c.setup(fs)
	fs.SetOutput(io.Discard) // parse errors are printed below, help on stdout
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		fmt.Fprintf(stderr, "latent %s: %v\n", c.name, err)
		fs.SetOutput(stderr)
		fs.Usage()
		return 2
	}
	fs.SetOutput(stderr)
	if err := runner(ctx, pos); err != nil {
		fmt.Fprintf(stderr, "latent %s: %v\n", c.name, withHint(err, retryHint))
		if errors.Is(err, errUsage) {
			fs.Usage()
			return 2
		}
		return 1
	}
	return 0
}

// parseInterspersed parses flags that come before, between or after the
// positional arguments ("latent encode RUN --split test" as well as
// "latent encode --split test RUN") and returns the positional arguments.
// Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(c *command, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("latent "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		usage := strings.TrimSpace("latent " + c.name + " [flags] " + c.args)
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n\nFlags:\n", usage, c.short)
		fs.PrintDefaults()
	}
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "latent trains image autoencoders, exports them as ONNX and runs them through ONNX Runtime.\n\nUsage: latent <command> [flags] [args]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].short)
	}
	fmt.Fprintf(w, "\nRun 'latent <command> --help' for a command's flags.\n")
}
