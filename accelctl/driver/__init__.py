"""User-space driver core: rings, trackers, queue pairs, controller, DMA buffers, sessions.

Import the pieces from their modules (``accelctl.driver.session.open_endpoint``, ...); this
package stays empty so ``import accelctl`` costs nothing for the CLI's other commands.
"""
