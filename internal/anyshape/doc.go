// Package anyshape holds the test that one architecture declaration of a
// shape other than MNIST's, 3×32×32 colour images, goes through everything
// latent does with no other change: the trainer, the exporter, ONNX
// Runtime, the report's figures and the server. It has no code of its own.
package anyshape
