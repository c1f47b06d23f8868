package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/latent-ai/latent/checkpoint"
	"github.com/latent-ai/latent/dataset"
	"github.com/latent-ai/latent/trainer"
)

// dataFlags are the flags that choose a data set.
type dataFlags struct {
	name string
	dir  string
}

func (d *dataFlags) register(fs *flag.FlagSet, defaultName string) {
	fs.StringVar(&d.name, "dataset", defaultName, "data set: mnist or fashion-mnist")
	fs.StringVar(&d.dir, "data", "", "folder of the data set's IDX files (default: mnist $LATENT_MNIST, else $LATENT_DATA, else ./data/mnist;\nfashion-mnist $LATENT_FASHION_MNIST, else /usr/share/datasets/fashion-mnist)")
}

// load reads one split ("train" or "test"), downloading missing files
// first when the data set can be downloaded.
func (d *dataFlags) load(ctx context.Context, split string) (*dataset.Set, error) {
	dir := dataset.Dir(d.name, d.dir)
	if err := dataset.Ensure(ctx, d.name, dir, os.Stderr); err != nil {
		return nil, err
	}
	set, err := dataset.Load(d.name, dir, split)
	if err != nil {
		return nil, fmt.Errorf("load %s %s from %s: %w", d.name, split, dir, err)
	}
	return set, nil
}

// asData returns the set as the trainer takes it, with its files.
func asData(s *dataset.Set) trainer.Data {
	d := trainer.Data{Images: s.Images, N: s.N}
	for _, f := range s.Files {
		d.Files = append(d.Files, checkpoint.DataFile{Split: s.Split, Path: f.Path, MD5: f.MD5})
	}
	return d
}
