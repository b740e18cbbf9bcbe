// A CLI file that reaches into the Store: check_layering must refuse it.
#include "store/store.h"
