package main

import (
	"github.com/latent-ai/latent/run"
	"github.com/latent-ai/latent/trainer"
)

// The run folder's file names, for the tests whose variables are named run.
const (
	modelFile   = run.ModelFile
	stateFile   = run.StateFile
	metricsFile = run.MetricsFile
	evalFile    = run.EvalFile
)

// trainerFiles returns where the trainer writes the files of the run folder
// dir.
func trainerFiles(dir string) trainer.Files { return run.Folder(dir).Trainer() }
