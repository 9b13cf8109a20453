"""Test support for routing-runner: a loopback server speaking the OpenAI wire format.

Shared by the test suite (`tests/`) and the benchmarks (`bench/`), and installed with the
package so both import it the same way from a checkout or an installed copy.
"""
