"""Faces from video: decoding, dlib detection and landmark tracking, aligned chips, the face file."""
