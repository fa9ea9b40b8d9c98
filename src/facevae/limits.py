"""The bounds of every number a user can ask for: one definition for the REST API
(app/server/schemas.py) and the command line (cli/options.py). No imports: the CLI reads them
before torch loads.
"""

from __future__ import annotations

# --- what one request or command may ask for ------------------------------------------
MAX_FACES = 64  # faces per API request: a grid of 8 x 8
MAX_CLI_FACES = 256  # faces in one picture written by the command line (a 16 x 16 grid)
MAX_STRENGTH = 10.0  # attribute strengths beyond +-10 only produce noise
MAX_TEMPERATURE = 5.0
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer
MAX_SCALE = 8  # integer enlargement of PNG output (64 px faces -> 512 px)
MAX_LATENT_DIM = 4096  # bounds a latent row before the model checks its exact size
# |value| of a latent code: the prior is N(0, 1). A code drawn at temperature 5 with one attribute
# at strength 10 stays near 30 (celeba64-original's vectors reach 0.89 per dimension), while
# values like 3.4e38 overflow the decoder into garbage
MAX_LATENT_VALUE = 100.0
MAX_ATTRIBUTES = 64  # entries in one attribute mapping
MAX_REFINE_STEPS = 500  # optimisation steps per uploaded photo: seconds of CPU each
MAX_TUNE_STEPS = 200  # decoder-tuning steps per uploaded photo (facevae.inference.tuning)
MAX_UPLOAD_FILES = 16  # photos in one /v1/reconstruct request
MAX_NAME_LENGTH = 100  # characters of an attribute name (the longest real one is far shorter)

# --- what a file may describe (bundles, classifiers), checked before anything is allocated --
MAX_IMAGE_SIZE = 1024  # pixels per side; the largest preset is 256
MAX_LAYER_WIDTH = 2**20  # channels or latent size; the parameter count then refuses far smaller models
MAX_CLASSIFIER_PARAMETERS = 64 * 2**20  # the default classifier has about 0.4 million
MAX_CLASSIFIER_MEMBERS = 8  # networks averaged by one classifier (an ensemble)
