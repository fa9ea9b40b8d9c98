"""Stand-ins for what tests and benchmarks cannot have here: CelebA-format folders with real JPEGs
and label files (celeba.py), and the original project's Keras model as an independent oracle
(keras_oracle.py, needs the export extra). Nothing in the package imports this at run time."""
