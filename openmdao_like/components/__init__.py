"""Ready-made components. `ExternalCode` (run a solver binary wherever its resource description
fits, moving its files) arrives with the resource-allocation layer."""
