"""Using a trained model: the FacePipeline facade, inversion, face framing and attribute directions."""
