//! Training: MLA, BMM and the CMPM loss; initialisation from ViT/BERT checkpoints.
