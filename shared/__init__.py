"""huntwire: scheduled threat hunts on Microsoft Defender XDR and Sentinel."""

__version__ = "0.1.0"
