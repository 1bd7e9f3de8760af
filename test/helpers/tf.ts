/**
 * `tf` for tests, with sipl's cpu kernels installed the way selectBackend installs them for a command,
 * so that a test computes with the kernels users get and not silently with tfjs's reference ones.
 * Every test file that loads tf imports it from here (test/scripts/check-imports.test.ts checks that).
 */
import {installCpuKernels} from '../../src/kernels/register.js'

installCpuKernels()

export {tf, type Tensor} from '../../src/backend/tf.js'
