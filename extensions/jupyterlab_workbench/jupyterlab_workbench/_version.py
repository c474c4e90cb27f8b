__version__ = "0.1.0"
# the REST API's version: the panel refuses a server extension that speaks another one
API_VERSION = 1
