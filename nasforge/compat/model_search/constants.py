"""Model Search's spec constants; here they name nasforge spaces instead of .pbtxt files."""

DEFAULT_DNN = "dnn"
