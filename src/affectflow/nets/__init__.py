"""The networks (the paper's CNN, the RNNs) and the tensor code that training and inference share."""
