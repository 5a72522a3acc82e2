"""The Berka (PKDD'99 financial) data set: one schema, a streaming reader and writer for the
original `.asc` files, and a synthetic generator that writes files in the same physical format.

Stdlib only, so the data layer can be used and tested without Spark, Kafka or a database.
"""
