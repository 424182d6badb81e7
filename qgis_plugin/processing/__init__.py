"""The SARMAE Processing provider: the same runs as the dock, for batch mode, the Model
Designer, scripts and ``qgis_process``."""
