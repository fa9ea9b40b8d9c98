"""Measuring models: an attribute classifier facevae trains itself, and `facevae evaluate`.

    classifier.py           AttributeClassifier (one logit per attribute), its config, save/load
    classifier_training.py  training it from a cache's labels; scoring a split (accuracy, ROC AUC)
    image_metrics.py        MSE, PSNR, SSIM, KL: per-image numbers from maintained implementations
    reconstruction.py       per model: reconstruct a split (encoder or bounded inversion), timed
    edits.py                per model and attribute: success, off-target leak, change outside the face
    plots.py                PNG charts drawn with Pillow
    report.py               report.md, metrics.json and CSV files of an evaluation
    evaluate.py             `facevae evaluate`: all of the above for several models, side by side
"""
