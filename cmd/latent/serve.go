package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/inference"
	"github.com/latent-ai/latent/run"
	"github.com/latent-ai/latent/server"
)

func init() {
	register(&command{
		name:  "serve",
		args:  "RUN",
		short: "serve RUN's encoder and decoder over HTTP: a JSON API (/openapi.json) and the latent explorer (/)",
		setup: setupServe,
	})
}

func setupServe(fs *flag.FlagSet) func(context.Context, []string) error {
	var (
		addr        = fs.String("addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
		maxBody     = fs.Int64("max-body", server.DefaultMaxBodyBytes, "largest request body in bytes")
		maxBatch    = fs.Int("max-batch", server.DefaultMaxBatch, "most images or codes in one request")
		maxInFlight = fs.Int("max-inflight", 0, "inference calls that may run at once (0: twice the number of CPUs)")
		maxQueue    = fs.Int("max-queue", 0, "inference requests that may wait for a free slot; more get 503 at once (0: 4 × max-inflight)")
		maxWait     = fs.Duration("max-wait", server.DefaultMaxWait, "longest wait for a free inference slot before 503")
		timeout     = fs.Duration("timeout", server.DefaultRequestTimeout, "longest handling of one API request before 503")
		cors        = fs.String("cors", "", "let browser pages from this origin (https://example.org, or * for any) call the API")
		logJSON     = fs.Bool("log-json", false, "write the logs as JSON lines instead of text")
	)
	var data dataFlags
	data.register(fs, "")
	var rt ortFlags
	rt.register(fs)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usageError("want one run folder")
		}
		for _, f := range []struct {
			name string
			v    int64
		}{{"max-body", *maxBody}, {"max-batch", int64(*maxBatch)}, {"max-inflight", int64(*maxInFlight)},
			{"max-queue", int64(*maxQueue)}, {"max-wait", int64(*maxWait)}, {"timeout", int64(*timeout)}} {
			if f.v < 0 {
				return usageError("--%s %d: want 0 or more", f.name, f.v)
			}
		}
		if *maxBody == 0 || *maxBatch == 0 || *timeout == 0 {
			return usageError("--max-body, --max-batch and --timeout must be positive")
		}
		opts, err := rt.options()
		if err != nil {
			return err
		}
		var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
		if *logJSON {
			h = slog.NewJSONHandler(os.Stderr, nil)
		}
		logger := slog.New(h)

		dir := args[0]
		if err := run.Folder(dir).Exported(); err != nil {
			return err
		}
		model, err := inference.OpenRun(dir, opts)
		if err != nil {
			return err
		}
		defer model.Close()
		examples, err := loadExamples(&data, model, logger)
		if err != nil {
			return err
		}
		srv, err := server.New(model, server.Config{
			MaxBodyBytes:   *maxBody,
			MaxBatch:       *maxBatch,
			MaxInFlight:    *maxInFlight,
			MaxQueue:       *maxQueue,
			MaxWait:        *maxWait,
			RequestTimeout: *timeout,
			Examples:       examples,
			Logger:         logger,
			CORSOrigin:     *cors,
		})
		if err != nil {
			return usageError("%v", err)
		}
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		fmt.Fprintf(os.Stderr, "latent serve: %s on http://%s/ (API: /openapi.json; Ctrl-C stops)\n", dir, ln.Addr())
		return srv.Serve(ctx, ln)
	}
}

// loadExamples loads the test split of the data set for /v1/examples:
// --dataset, else the model's data set, else MNIST, from --data or the
// default folder. Nothing is downloaded. When --data is given the set must
// load; otherwise a missing set only means no examples (nil), with a note
// in the log.
func loadExamples(data *dataFlags, model *inference.Model, log *slog.Logger) (*dataset.Set, error) {
	given := data.dir != "" || data.name != ""
	data.useModel(model)
	var (
		set *dataset.Set
		err error
	)
	if data.own() {
		set, err = data.load(context.Background(), dataset.Test)
	} else { // nothing is downloaded for the examples
		set, err = dataset.Load(data.name, dataset.Dir(data.name, data.dir), dataset.Test)
	}
	if err != nil {
		if given {
			return nil, fmt.Errorf("serve: examples: %w", err)
		}
		log.Warn("no examples for the explorer: start with --data to name the test images", "error", err.Error())
		return nil, nil
	}
	return set, nil
}
