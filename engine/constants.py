"""Named integer constants shared by Python and Numba code (sides, flags, statuses, layouts)."""

# Sides: index of the side axis in the level arrays (px[book, side, level]).
BID = 0
ASK = 1

# Book status, as seen by readers.
EMPTY = 0     # never written
SYNCING = 1   # a snapshot is being (re)built: levels are not yet trustworthy
LIVE = 2      # in sync with the exchange
STALE = 3     # a gap, checksum failure or disconnect was seen: wait for the resync
CROSSED = 4   # best bid >= best ask after a complete message: resync needed
STATUS_NAMES = ("empty", "syncing", "live", "stale", "crossed")

# Update-record flags (bitmask).
F_CLEAR = 1     # clear both sides before applying this record (snapshot begin)
F_END = 2       # last record of an exchange message: publish seq/timestamps, crossed check
F_STATUS = 4    # control record: set the book's status to the record's size field; no level
F_NOLEVEL = 8   # the record carries no level (e.g. a bare clear or an end marker)
F_CHECKSUM = 16  # control record: verify the exchange checksum in R_PRICE using the
                 # scheme in R_SIZE (engine.checksum CK_*) against the book as it is now

NO_SEQ = -1     # exchange sequence unknown / not carried

# Book header: HDR_WORDS int64 per book, 192 bytes = three whole cache lines, so the
# counters a writer bumps never share a cache line with another book's.
HDR_WORDS = 24
H_SEQLOCK = 0      # seqlock counter: odd while the writer is inside a write section
H_NBID = 1         # number of bid levels held
H_NASK = 2         # number of ask levels held
H_EXCH_SEQ = 3     # last exchange sequence applied (end of message)
H_EXCH_TS = 4      # last exchange timestamp, ns (0 if the venue sends none)
H_RECV_TS = 5      # local receive time of the last applied message, monotonic ns
H_BID_LO = 6       # row index of the worst bid level held: the bids are
H_ASK_LO = 7       # px[b, BID, lo:lo+n], best last (asks likewise); n = 0: lo is moot
H_MESSAGES = 8     # messages (END records) applied
H_STATUS = 9       # one of the statuses above
H_CROSSED = 10     # number of times a complete message left the book crossed
H_DEPTH_DROPS = 11  # inserts ignored because they fell beyond the stored depth
H_ABSENT_DELETES = 12  # deletes of levels the book does not hold
H_PRICE_DEC = 13   # price decimals (fixed-point scale), set once before the writer starts
H_SIZE_DEC = 14    # size decimals
H_CHECKSUM_OK = 15    # exchange checksums verified equal
H_CHECKSUM_FAIL = 16  # exchange checksums that did not match (book marked STALE)
H_STALE_EVENTS = 17   # times the book was marked STALE by a control record or checksum
H_CHECKSUM_BAD = 18   # 1 from a checksum mismatch until the next snapshot (F_CLEAR):
                      # a LIVE status record cannot make such a book live
H_MAX_LEVELS = 19     # levels kept per side for this book (<= the store's row length,
                      # which has spare slots, engine.store.row_length); 0 = the row length
H_PUBLISH_TS = 20     # when the writer last made this book visible, monotonic ns
H_UPDATES = 21        # level updates applied

# Update-record layout: one row per field of a struct-of-arrays ring (int64 each).
REC_FIELDS = 8
R_BOOK = 0
R_SIDE = 1
R_FLAGS = 2
R_PRICE = 3
R_SIZE = 4
R_SEQ = 5      # exchange sequence of the message
R_TS = 6       # exchange timestamp, ns
R_RECV = 7     # local receive timestamp, monotonic ns (latency origin)

CACHE_LINE = 64
