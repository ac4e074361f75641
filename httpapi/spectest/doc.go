// Package spectest checks the HTTP API against its OpenAPI document with
// kin-openapi: the document is valid OpenAPI 3, and every answer the API
// gives in a scripted session (each route, each error status) matches the
// response the document describes. A module of its own, so the library
// does not require kin-openapi.
package spectest
