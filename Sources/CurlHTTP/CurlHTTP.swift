// The CurlHTTP module.
