"""Every database call of the project lives in this package.

The stores speak plain PyMongo async (`AsyncMongoClient`) and use only
operations that behave the same on a real MongoDB and on the embedded
`nx-27017` server (see `docs/persistence.md`).
"""
