"""Training: the train-cnn / train-rnn commands, their data, loops, checkpoints and streaming."""
