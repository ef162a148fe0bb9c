"""Python code generated from .proto schemas (see generate.sh); do not edit the *_pb2 files."""
