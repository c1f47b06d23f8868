package trainer

import "math"

// The learning-rate schedules of Config.Schedule's Kind.
const (
	// ScheduleCosine warms the rate up linearly over Warmup steps, from
	// LR/Warmup to LR, then anneals it along half a cosine towards 0 over
	// the run's remaining steps, as PyTorch's LinearLR then
	// CosineAnnealingLR stepped once a batch.
	ScheduleCosine = "cosine"
	// ScheduleStep warms up as ScheduleCosine does, then multiplies the
	// rate by Gamma every Every epochs, as PyTorch's StepLR stepped once
	// an epoch.
	ScheduleStep = "step"
)

// LRAt returns the learning rate of step t (1 for a run's first) of a run
// of cfg with stepsPerEpoch steps an epoch: cfg.LR without a schedule.
func LRAt(cfg Config, t, stepsPerEpoch int) float64 {
	s := cfg.Schedule
	if s == nil || t < 1 || stepsPerEpoch < 1 {
		return cfg.LR
	}
	if t <= s.Warmup {
		return cfg.LR * float64(t) / float64(s.Warmup)
	}
	switch s.Kind {
	case ScheduleCosine:
		total := cfg.Epochs * stepsPerEpoch
		span := total - s.Warmup
		if span < 1 {
			return cfg.LR
		}
		k := min(t-s.Warmup-1, span-1)
		return cfg.LR * 0.5 * (1 + math.Cos(math.Pi*float64(k)/float64(span)))
	case ScheduleStep:
		epoch := (t - 1) / stepsPerEpoch // 0 for the first
		return cfg.LR * math.Pow(s.Gamma, float64(epoch/s.Every))
	}
	return cfg.LR
}
