"""The prior over one source's codes given the others' (bass generation): model, data, training."""
